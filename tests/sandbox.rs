//! `hoist run` and `hoist info` through the real binary: the rootless sandbox as uid 65534
//! without capabilities (single-id mode), as the `hoisttest` user with a subordinate id range
//! (made by scripts/test.sh), and as root.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same, assert_success, chown_tree, run, show, TestEnv};

/// A rootless (uid 65534, single-id) environment with the busybox image imported as `busybox`.
fn rootless() -> TestEnv {
    let env = TestEnv::rootless();
    env.import_busybox("busybox");
    env
}

/// A root environment with the busybox image.
fn as_root() -> TestEnv {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    env
}

fn stdout(env: &TestEnv, args: &[&str]) -> String {
    env.ok(args)
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

/// Every file under `dir` with its type, mode, owner, size and content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("walk");
        let m = e.path().symlink_metadata().expect("lstat");
        let content = if m.is_file() {
            let mut s = Vec::new();
            std::fs::File::open(e.path())
                .unwrap()
                .read_to_end(&mut s)
                .unwrap();
            format!("{:x}", sha2_len(&s))
        } else if m.file_type().is_symlink() {
            std::fs::read_link(e.path()).unwrap().display().to_string()
        } else {
            String::new()
        };
        out.insert(
            e.path().strip_prefix(dir).unwrap().to_owned(),
            format!(
                "{:o} {}:{} {} {} {}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.mtime(),
                content
            ),
        );
    }
    out
}

/// A cheap content fingerprint (FNV-1a), enough to see a changed file.
fn sha2_len(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn rootless_id_is_0_inside_and_uid_map_shows_the_single_mapping() {
    let env = rootless();
    assert_same(
        "id -u",
        "0\n",
        &stdout(&env, &["run", "busybox", "id", "-u"]),
    );
    let map = stdout(&env, &["run", "busybox", "cat", "/proc/self/uid_map"]);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", "65534", "1"], "uid_map: {map}");
}

#[test]
fn rootless_host_paths_outside_the_image_are_invisible() {
    let env = rootless();
    let secret = env.path("host-only.txt");
    std::fs::write(&secret, "secret").unwrap();
    let (code, out, err) = outcome(&env, &["run", "busybox", "cat", secret.to_str().unwrap()]);
    assert_eq!(code, 1, "cat of a host path must fail\n{out}{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    let (code, _, _) = outcome(
        &env,
        &["run", "busybox", "ls", env.dir.path().to_str().unwrap()],
    );
    assert_eq!(code, 1);
    // the image's root is the root: nothing of the host's / is there
    let ls = stdout(&env, &["run", "busybox", "ls", "/"]);
    assert_same(
        "ls /",
        "bin\ndev\netc\nhome\nlinuxrc\nproc\nroot\nrun\nsbin\nsys\ntmp\nusr\nvar\n",
        &ls,
    );
}

#[test]
fn rootless_hostname_is_the_containers() {
    let env = rootless();
    assert_same(
        "hostname",
        "box\n",
        &stdout(&env, &["run", "--hostname", "box", "busybox", "hostname"]),
    );
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let name = stdout(&env, &["run", "busybox", "hostname"]);
    let name = name.trim();
    assert_ne!(name, host);
    assert!(
        name.len() == 12 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "default hostname `{name}`"
    );
    let hosts = stdout(
        &env,
        &[
            "run",
            "--hostname",
            "box",
            "--network",
            "none",
            "busybox",
            "cat",
            "/etc/hostname",
            "/etc/hosts",
        ],
    );
    assert_same(
        "generated files",
        "box\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox\n",
        &hosts,
    );
    let hosts = stdout(
        &env,
        &["run", "--hostname", "box", "busybox", "cat", "/etc/hosts"],
    );
    assert!(hosts.ends_with("127.0.1.1\tbox\n"), "{hosts}");
    // edits of the generated files stay in the container
    env.ok([
        "run",
        "busybox",
        "sh",
        "-c",
        "echo 1.2.3.4 x >> /etc/hosts && echo nameserver 9.9.9.9 > /etc/resolv.conf",
    ]);
    assert!(!std::fs::read_to_string("/etc/resolv.conf")
        .unwrap()
        .contains("9.9.9.9"));
    assert!(!std::fs::read_to_string("/etc/hosts")
        .unwrap()
        .contains("1.2.3.4"));
}

#[test]
fn exit_status_passes_through() {
    let env = rootless();
    env.fails(7, ["run", "busybox", "sh", "-c", "exit 7"]);
    env.fails(137, ["run", "busybox", "sh", "-c", "kill -9 $$"]);
    let err = env.fails(127, ["run", "busybox", "no-such-tool"]);
    assert!(
        err.contains("exec: \"no-such-tool\": executable file not found in $PATH"),
        "{err}"
    );
    let err = env.fails(126, ["run", "busybox", "/etc/passwd"]);
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    let err = env.fails(125, ["run", "no-such-image", "true"]);
    assert!(err.contains("no-such-image"), "{err}");
}

#[test]
fn files_written_inside_are_gone_and_layers_unchanged() {
    let env = rootless();
    let layers = env.root.join("layers");
    // layers are unpacked lazily, on the first run
    env.ok(["run", "busybox", "true"]);
    let before = snapshot(&layers);
    assert!(before.len() > 100, "layers/ holds the unpacked image");
    env.ok([
        "run", "busybox", "sh", "-c",
        "echo x > /root/new && echo y >> /etc/passwd && rm /bin/ls && rm -r /home && mkdir /made && chmod 700 /tmp",
    ]);
    let after = snapshot(&layers);
    assert!(before == after, "unpacked layers changed after a run");
    let out = stdout(
        &env,
        &["run", "busybox", "sh", "-c", "ls /root; test -e /made || echo no-made; test -e /bin/ls && echo ls; ls -d /home; stat -c %a /tmp; tail -1 /etc/passwd"],
    );
    assert_same(
        "second run",
        "no-made\nls\n/home\n1777\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        &out,
    );
}

#[test]
fn network_none_shows_only_lo_and_it_is_up() {
    let env = rootless();
    let dev = stdout(
        &env,
        &[
            "run",
            "--network",
            "none",
            "busybox",
            "cat",
            "/proc/net/dev",
        ],
    );
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    let link = stdout(&env, &["run", "--network", "none", "busybox", "ip", "link"]);
    assert!(link.contains("lo: <LOOPBACK,UP,LOWER_UP>"), "{link}");
    assert!(stdout(
        &env,
        &[
            "run",
            "--network",
            "none",
            "busybox",
            "cat",
            "/etc/resolv.conf"
        ]
    )
    .is_empty());
}

#[test]
fn volumes_are_read_write_or_read_only_as_asked() {
    let env = rootless();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "from host\n").unwrap();
    chown_tree(&data, 65534);
    let rw = format!("{}:/mnt/data", data.display());
    let out = stdout(
        &env,
        &[
            "run",
            "-v",
            &rw,
            "busybox",
            "sh",
            "-c",
            "cat /mnt/data/in.txt && echo from container > /mnt/data/out.txt",
        ],
    );
    assert_same("rw read", "from host\n", &out);
    assert_same(
        "rw write",
        "from container\n",
        &std::fs::read_to_string(data.join("out.txt")).unwrap(),
    );

    let ro = format!("{}:/mnt/data:ro", data.display());
    let (code, _, err) = outcome(
        &env,
        &[
            "run",
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "cat /mnt/data/in.txt >/dev/null && touch /mnt/data/no",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!data.join("no").exists());

    // a single file, and bad forms rejected before anything runs
    let file = format!("{}:/etc/motd:ro", data.join("in.txt").display());
    assert_same(
        "file bind",
        "from host\n",
        &stdout(&env, &["run", "-v", &file, "busybox", "cat", "/etc/motd"]),
    );
    let err = env.fails(125, ["run", "-v", "rel:/x", "busybox", "true"]);
    assert!(err.contains("must be absolute"), "{err}");
    let err = env.fails(
        125,
        ["run", "-v", "/nonexistent-hoist-src:/x", "busybox", "true"],
    );
    assert!(
        err.contains("`/nonexistent-hoist-src` does not exist"),
        "{err}"
    );
}

#[test]
fn single_id_mode_chown_succeeds_and_records_nothing_false() {
    let env = rootless();
    let out = stdout(
        &env,
        &[
            "run",
            "busybox",
            "sh",
            "-c",
            "touch /f && chown 1000 /f && chown 1000:1000 /f && echo ok && stat -c %u:%g /f",
        ],
    );
    assert_same("single-id chown", "ok\n0:0\n", &out);
    // another user cannot be represented: it runs as uid 0 with the user's HOME and no
    // capabilities (as a non-root user has in docker), and says so
    let out = env
        .cmd([
            "run",
            "-u",
            "app",
            "busybox",
            "sh",
            "-c",
            "id -u; echo $HOME; grep -E '^Cap(Eff|Prm)' /proc/self/status",
        ])
        .output()
        .expect("hoist run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_same(
        "single-id non-root user",
        "0\n/home/app\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n",
        &String::from_utf8_lossy(&out.stdout),
    );
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("single-id mode: `USER app` runs as uid 0"),
        "{err}"
    );
    assert_eq!(err.matches("single-id mode").count(), 1, "{err}");
}

#[test]
fn sigint_ends_the_container_and_leaves_nothing_behind() {
    sigint_case(&rootless(), 0);
    // as root nothing separates the container's mounts from the host's but the sandbox's own
    // private propagation: the host's mount table is the thing to check
    sigint_case(&as_root(), 1);
}

fn sigint_case(env: &TestEnv, n: u32) {
    let tmp = env.path("tmpdir");
    std::fs::create_dir(&tmp).unwrap();
    if let Some(uid) = env.as_user {
        chown_tree(&tmp, uid);
    }
    let marker = format!("{}", 100_000 + (std::process::id() * 2 + n) % 800_000);
    let mut cmd = env.cmd(["run", "busybox", "sleep", &marker]);
    cmd.env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn hoist run");
    let sleeping = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .map(|c| c == format!("sleep\0{marker}\0").as_bytes())
                .unwrap_or(false)
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !sleeping() {
        assert!(
            Instant::now() < until,
            "the container's sleep never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // the setpriv wrapper execs hoist, so the child's pid is hoist's
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "hoist did not end after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!sleeping(), "the container's process survived");
    for mountinfo in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
        let m = std::fs::read_to_string(mountinfo).unwrap();
        assert!(
            !m.contains("hoist-run-") && !m.contains(env.dir.path().to_str().unwrap()),
            "a mount is left in {mountinfo}:\n{m}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temp dirs left: {left:?}");
    let store_tmp: Vec<_> = std::fs::read_dir(env.root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(store_tmp.is_empty(), "store tmp left: {store_tmp:?}");
}

#[test]
fn image_defaults_env_entrypoint_and_pid_namespace() {
    let env = rootless();
    let out = stdout(
        &env,
        &[
            "run",
            "-e",
            "A=1",
            "-e",
            "PATH=/bin",
            "busybox",
            "sh",
            "-c",
            "echo $A $PATH $HOME $$; pwd",
        ],
    );
    assert_same("env", "1 /bin /root 2\n/\n", &out);
    assert_same(
        "entrypoint",
        "hi there\n",
        &stdout(
            &env,
            &["run", "--entrypoint", "echo", "busybox", "hi", "there"],
        ),
    );
    assert_same(
        "workdir",
        "/srv/app\n",
        &stdout(&env, &["run", "-w", "/srv/app", "busybox", "pwd"]),
    );
    assert_same(
        "--rm accepted",
        "x\n",
        &stdout(&env, &["run", "--rm", "busybox", "echo", "x"]),
    );
    let devs = stdout(&env, &["run", "busybox", "ls", "/dev"]);
    for d in [
        "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero", "fd",
    ] {
        assert!(devs.lines().any(|l| l == d), "/dev lacks {d}: {devs}");
    }
    let err = env.fails(125, ["run", "busybox"]);
    assert!(err.contains("no command specified"), "{err}");
}

#[test]
fn root_runs_other_users_with_groups_and_home() {
    let env = as_root();
    let out = stdout(
        &env,
        &[
            "run",
            "-u",
            "app",
            "-w",
            "/work",
            "busybox",
            "sh",
            "-c",
            "id; pwd; echo $HOME",
        ],
    );
    assert_same(
        "user app",
        "uid=1000(app) gid=1000(app) groups=4(adm),100(users)\n/work\n/home/app\n",
        &out,
    );
    assert_same(
        "uid:gid",
        "4242:33\n",
        &stdout(
            &env,
            &[
                "run",
                "-u",
                "4242:www-data",
                "busybox",
                "sh",
                "-c",
                "echo $(id -u):$(id -g)",
            ],
        ),
    );
    let caps = stdout(
        &env,
        &["run", "busybox", "grep", "Cap", "/proc/self/status"],
    );
    assert!(
        caps.contains("CapEff:\t00000000a80425fb"),
        "docker's default set\n{caps}"
    );
    assert!(caps.contains("CapBnd:\t00000000a80425fb"), "{caps}");
    let nnp = stdout(
        &env,
        &["run", "busybox", "grep", "NoNewPrivs", "/proc/self/status"],
    );
    assert_same("no_new_privs", "NoNewPrivs:\t1\n", &nnp);
}

#[test]
fn tty_gives_an_interactive_shell_a_pty() {
    let env = as_root();
    let hoist = common::hoist_bin().display().to_string();
    let out = run(Command::new("script")
        .args([
            "-qec",
            &format!("{hoist} run -it busybox sh -c 'tty; stty size'"),
            "/dev/null",
        ])
        .env("HOIST_ROOT", &env.root)
        .stdin(Stdio::null()));
    assert_success(&Command::new("script"), &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "{}", show(&out));
    let err = env.fails(125, ["run", "-it", "busybox", "sh"]);
    assert!(err.contains("the input device is not a TTY"), "{err}");
}

/// The `hoisttest` user and its subordinate range, made by scripts/test.sh.
fn hoisttest_uid() -> u32 {
    let out = run(Command::new("id").args(["-u", "hoisttest"]));
    assert!(
        out.status.success(),
        "user `hoisttest` is missing: run scripts/test.sh (as root), which creates it with a subuid range"
    );
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
    assert!(
        subuid.lines().any(|l| l.starts_with("hoisttest:"))
            && subgid.lines().any(|l| l.starts_with("hoisttest:")),
        "`hoisttest` has no range in /etc/subuid and /etc/subgid: run scripts/test.sh"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `hoist ARGS…` as `hoisttest`, an ordinary login-like user (no capabilities, but a full
/// bounding set, so the setuid `newuidmap` works as it does for a real user).
fn as_hoisttest(env: &TestEnv, uid: u32, args: &[&str]) -> std::process::Output {
    run(Command::new("setpriv")
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
        .current_dir(env.dir.path())
        .stdin(Stdio::null()))
}

#[test]
fn subuid_range_keeps_owners_through_chown() {
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    let tar = common::busybox_rootfs();
    let out = as_hoisttest(&env, uid, &["import", tar.to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = as_hoisttest(
        &env,
        uid,
        &[
            "run",
            "busybox",
            "sh",
            "-c",
            "touch /f; chown 1000:1000 /f; stat -c %u:%g /f; cat /proc/self/uid_map",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1000:1000"), "{text}");
    let map: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(map.len(), 2, "0 → user, 1… → range: {text}");
    assert_eq!(map[0], ["0", &uid.to_string(), "1"]);
    assert_eq!(map[1][0], "1");
    let out = as_hoisttest(&env, uid, &["run", "-u", "app", "busybox", "id", "-u"]);
    assert_same(
        "user app in range mode",
        "1000\n",
        &String::from_utf8_lossy(&out.stdout),
    );
}

#[test]
fn info_reports_mode_and_reason() {
    let env = TestEnv::rootless();
    let text = env.ok(["info"]);
    assert!(text.contains("mode       rootless-single-id"), "{text}");
    assert!(
        text.contains("no subordinate id range for user `nobody` in `/etc/subuid`"),
        "{text}"
    );
    assert!(text.contains("overlay    yes"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["info", "--format", "json"])).unwrap();
    assert_eq!(json["mode"], "rootless-single-id");
    assert_eq!(json["store"], env.root.display().to_string());
    assert_eq!(json["overlay_ok"], true);

    let root = TestEnv::new();
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(["info", "--format", "json"])).unwrap();
    assert_eq!(json["mode"], "root");
    assert_eq!(json["reason"], serde_json::Value::Null);

    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    let out = as_hoisttest(&env, uid, &["info", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mode"], "rootless", "{}", show(&out));
}

#[test]
fn debug_log_names_the_mode_decision() {
    let env = rootless();
    let (code, _, err) = outcome(&env, &["--log-level", "debug", "run", "busybox", "true"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "user namespace: rootless with a single id (0 → 65534): no subordinate id range"
        ),
        "{err}"
    );
}

/// An image of the busybox base and `n` one-file layers plus a last layer whiting out
/// `/layers/1`, written with umoci and copied into the store with skopeo (the store is an OCI
/// layout, so skopeo writes it as it is).
fn many_layer_image(env: &TestEnv, n: usize) {
    let umoci = common::require("umoci");
    let skopeo = common::require("skopeo");
    let work = env.path("many");
    std::fs::create_dir(&work).unwrap();
    let layout = work.join("src");
    let ok = |cmd: &mut Command| {
        let out = run(cmd);
        assert_success(cmd, &out);
    };
    ok(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
    let image = format!("{}:v", layout.display());
    ok(Command::new(&umoci).args(["new", "--image", &image]));
    ok(Command::new(&umoci)
        .args(["raw", "add-layer", "--image", &image])
        .arg(common::busybox_rootfs()));
    let add = |name: &str, file: &str, content: &str| {
        let dir = work.join(name);
        std::fs::create_dir_all(dir.join("layers")).unwrap();
        std::fs::write(dir.join("layers").join(file), content).unwrap();
        let tar = work.join(format!("{name}.tar"));
        ok(Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&tar)
            .arg("layers"));
        ok(Command::new(&umoci)
            .args(["raw", "add-layer", "--image", &image])
            .arg(&tar));
    };
    for i in 1..=n {
        add(&format!("l{i}"), &i.to_string(), &format!("{i}\n"));
    }
    add("wh", ".wh.1", "");
    env.ok(["images"]);
    ok(Command::new(&skopeo)
        .args(["copy", "-q", &format!("oci:{image}")])
        .arg(format!("oci:{}:localhost/many:latest", env.root.display())));
    if let Some(uid) = env.as_user {
        chown_tree(&env.root, uid);
    }
}

#[test]
fn more_than_thirty_layers_mount_without_limit() {
    let env = TestEnv::rootless();
    many_layer_image(&env, 45);
    let out = stdout(
        &env,
        &[
            "run",
            "many",
            "sh",
            "-c",
            "ls /layers | wc -l; cat /layers/2 /layers/45; test -e /layers/1 || echo whited-out",
        ],
    );
    assert_same("47-layer image", "44\n2\n45\nwhited-out\n", &out);
}

#[test]
fn stdin_reaches_the_command_only_with_i() {
    let env = rootless();
    let mut cmd = env.cmd(["run", "-i", "busybox", "tr", "a-z", "A-Z"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_same("-i", "HELLO\n", &String::from_utf8_lossy(&out.stdout));
    // without -i the command reads /dev/null even when hoist's stdin has data
    let mut cmd = env.cmd(["run", "busybox", "cat"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"ignored\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_same("no -i", "", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn sigterm_ends_the_container_with_128_plus_15() {
    let env = rootless();
    let mut cmd = env.cmd([
        "run",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"started\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
}

#[test]
fn copying_fallback_runs_the_same_and_leaves_layers_unchanged() {
    let env = rootless();
    env.ok(["run", "busybox", "true"]);
    let layers = env.root.join("layers");
    let before = snapshot(&layers);
    let mut cmd = env.cmd([
        "run",
        "busybox",
        "sh",
        "-c",
        "echo x > /root/new; rm /bin/ls; id -u; exit 5",
    ]);
    cmd.env("HOIST_SANDBOX_COPY", "1");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert_same("copy mode id", "0\n", &String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("copying the layers instead"), "{err}");
    assert!(
        before == snapshot(&layers),
        "unpacked layers changed after a copying run"
    );
    assert_same(
        "after",
        "/bin/ls\n",
        &stdout(
            &env,
            &["run", "busybox", "sh", "-c", "ls /bin/ls; ls /root"],
        ),
    );
}

#[test]
fn a_layer_that_appears_twice_is_mounted_once_at_its_top_place() {
    let env = TestEnv::rootless();
    let umoci = common::require("umoci");
    let skopeo = common::require("skopeo");
    let work = env.path("dup");
    std::fs::create_dir(&work).unwrap();
    let layout = work.join("src");
    let image = format!("{}:v", layout.display());
    let ok = |cmd: &mut Command| {
        let out = run(cmd);
        assert_success(cmd, &out);
    };
    let tar_of = |name: &str, file: &str, content: &str| {
        let dir = work.join(name);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc").join(file), content).unwrap();
        let tar = work.join(format!("{name}.tar"));
        ok(Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["--mtime=@0", "--owner=0", "--group=0", "-cf"])
            .arg(&tar)
            .arg("etc"));
        tar
    };
    let a = tar_of("a", "motd", "from a\n");
    let b = tar_of("b", "motd", "from b\n");
    ok(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
    ok(Command::new(&umoci).args(["new", "--image", &image]));
    for t in [common::busybox_rootfs(), a.clone(), b, a] {
        ok(Command::new(&umoci)
            .args(["raw", "add-layer", "--image", &image])
            .arg(t));
    }
    env.ok(["images"]);
    ok(Command::new(&skopeo)
        .args(["copy", "-q", &format!("oci:{image}")])
        .arg(format!("oci:{}:localhost/dup:latest", env.root.display())));
    chown_tree(&env.root, 65534);
    let (code, out, err) = outcome(&env, &["run", "dup", "cat", "/etc/motd"]);
    assert_eq!(code, 0, "{err}");
    assert_same("top layer wins", "from a\n", &out);
    assert!(
        !err.contains("copying the layers instead"),
        "overlay must mount: {err}"
    );
}

/// Regression: the command inherited hoist's ignored SIGPIPE (Rust's runtime ignores it), so
/// `yes | head -c 1` never ended; docker starts commands with every signal at its default.
#[test]
fn commands_start_with_no_ignored_signals() {
    for env in [as_root(), rootless()] {
        let out = stdout(
            &env,
            &[
                "run",
                "--rm",
                "busybox",
                "grep",
                "SigIgn",
                "/proc/self/status",
            ],
        );
        assert_same("signals ignored", "SigIgn:\t0000000000000000\n", &out);
        let out = stdout(
            &env,
            &["run", "--rm", "busybox", "sh", "-c", "yes | head -c 3"],
        );
        assert_same("yes | head", "y\ny", &out);
    }
}
