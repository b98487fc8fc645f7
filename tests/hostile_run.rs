//! Hostile RUN steps and `hoist run` commands through the real binary, as root, rootless with a
//! single id (uid 65534) and rootless with a subordinate range (`hoisttest`): a static C program
//! (fixtures/hostile/, compiled here with `gcc -static`) tries to type into the user's terminal,
//! makes and opens device nodes, and calls what docker's default seccomp profile refuses.
//! Also: what killed runs and `hoist info` leave in the system temp dir.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{chown_tree, run, show, TestEnv};

/// Who runs hoist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Root,
    /// uid 65534, no capabilities, no subordinate range: single-id mode.
    Nobody,
    /// `hoisttest`, with a subordinate range (made by scripts/test.sh).
    Ranged(u32),
}

fn everyone() -> [Who; 3] {
    [Who::Root, Who::Nobody, Who::Ranged(hoisttest_uid())]
}

fn hoisttest_uid() -> u32 {
    let out = run(Command::new("id").args(["-u", "hoisttest"]));
    assert!(
        out.status.success(),
        "user `hoisttest` is missing: run scripts/test.sh (as root), which creates it with a subuid range"
    );
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(
        subuid.lines().any(|l| l.starts_with("hoisttest:")),
        "`hoisttest` has no range in /etc/subuid: run scripts/test.sh"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Who {
    /// The words that run a program as this user (empty for root).
    fn prefix(self) -> Vec<String> {
        let ids = |uid: u32| [format!("--reuid={uid}"), format!("--regid={uid}")];
        match self {
            Who::Root => vec![],
            Who::Nobody => {
                let mut v = vec!["setpriv".to_string()];
                v.extend(ids(65534));
                v.extend(
                    [
                        "--clear-groups",
                        "--inh-caps=-all",
                        "--bounding-set=-all",
                        "--",
                    ]
                    .map(String::from),
                );
                v
            }
            Who::Ranged(uid) => {
                let mut v = vec!["setpriv".to_string()];
                v.extend(ids(uid));
                v.extend(["--init-groups", "--inh-caps=-all", "--"].map(String::from));
                v
            }
        }
    }

    fn uid(self) -> Option<u32> {
        match self {
            Who::Root => None,
            Who::Nobody => Some(65534),
            Who::Ranged(uid) => Some(uid),
        }
    }

    /// A fresh store whose directory belongs to this user, with busybox imported.
    fn env(self) -> TestEnv {
        let env = TestEnv::new();
        if let Some(uid) = self.uid() {
            chown_tree(env.dir.path(), uid);
        }
        let tar = common::busybox_rootfs();
        let out = self.hoist(&env, &["import", tar.to_str().unwrap(), "busybox"]);
        assert!(out.status.success(), "{self:?}: import\n{}", show(&out));
        env
    }

    fn command(self, env: &TestEnv, args: &[&str]) -> Command {
        let prefix = self.prefix();
        let mut cmd = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(common::hoist_bin());
                c
            }
            None => Command::new(common::hoist_bin()),
        };
        cmd.args(args)
            .env("HOIST_ROOT", &env.root)
            .env("HOME", env.dir.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(env.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn hoist(self, env: &TestEnv, args: &[&str]) -> Output {
        run(&mut self.command(env, args))
    }

    /// `hoist ARGS…` must succeed; returns stdout + stderr.
    fn ok(self, env: &TestEnv, args: &[&str]) -> String {
        let out = self.hoist(env, args);
        assert!(
            out.status.success(),
            "{self:?}: hoist {args:?}\n{}",
            show(&out)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// `fixtures/hostile/NAME.c` compiled statically, once per test run (shared across test
/// binaries through a lock file), readable and executable by every test user.
fn hostile(name: &str) -> PathBuf {
    static DONE: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap();
    if !done.iter().any(|d| d == name) {
        let lock = hoist::util::FileLock::exclusive(&dir.join(format!("{name}.lock"))).unwrap();
        let src = common::repo().join(format!("fixtures/hostile/{name}.c"));
        let tmp = dir.join(format!("{name}.{}", std::process::id()));
        let cc = run(Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src));
        assert!(cc.status.success(), "gcc {}\n{}", src.display(), show(&cc));
        std::fs::rename(&tmp, &out).unwrap();
        drop(lock);
        done.push(name.to_string());
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    out
}

/// A build context in the test dir holding `files` (copied) and a Dockerfile.
fn context(env: &TestEnv, who: Who, dockerfile: &str, files: &[&Path]) -> PathBuf {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for f in files {
        std::fs::copy(f, ctx.join(f.file_name().unwrap())).unwrap();
    }
    if let Some(uid) = who.uid() {
        chown_tree(&ctx, uid);
    }
    ctx
}

/// Runs `commands` (shell lines) through bash under `script(1)`, so hoist has a real terminal
/// as its standard streams and controlling terminal; after them the shell reads one line from
/// that terminal, which is where an injected command would land. Returns what the terminal
/// showed.
fn in_terminal(env: &TestEnv, commands: &[String]) -> String {
    let script = env.path("in-terminal.sh");
    let mut text = String::from("set -u\n");
    for c in commands {
        text.push_str(c);
        text.push_str("\necho \"STATUS:$?\"\n");
    }
    text.push_str("read -r -t 1 line; echo \"READ:[${line:-}]\"\n");
    std::fs::write(&script, text).unwrap();
    let out = run(Command::new("script")
        .args(["-qec", &format!("bash {}", script.display()), "/dev/null"])
        .env("HOIST_ROOT", &env.root)
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path())
        .stdin(Stdio::null()));
    assert!(out.status.success(), "script(1)\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn shell_words(who: Who, args: &[&str]) -> String {
    let mut words = who.prefix();
    words.push(common::hoist_bin().display().to_string());
    words.extend(args.iter().map(|a| a.to_string()));
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn tiocsti_from_a_run_step_or_hoist_run_never_reaches_the_terminal() {
    let prog = hostile("tiocsti");
    for who in everyone() {
        let env = who.env();
        let marker = format!("mark{}", std::process::id());
        let ctx = context(
            &env,
            who,
            &format!("FROM busybox\nCOPY tiocsti /tiocsti\nRUN /tiocsti {marker}\n"),
            &[&prog],
        );
        let bin = env.path("tiocsti");
        std::fs::copy(&prog, &bin).unwrap();
        if let Some(uid) = who.uid() {
            chown_tree(&bin, uid);
        }
        let volume = format!("{}:/t:ro", bin.display());
        let screen = in_terminal(
            &env,
            &[
                shell_words(
                    who,
                    &[
                        "build",
                        "--progress",
                        "plain",
                        "-t",
                        "hostile",
                        ctx.to_str().unwrap(),
                    ],
                ),
                shell_words(who, &["run", "-v", &volume, "busybox", "/t", &marker]),
                shell_words(who, &["run", "-i", "-v", &volume, "busybox", "/t", &marker]),
            ],
        );
        let injected = format!("PWNED{marker}");
        assert!(
            !screen.contains(&injected),
            "{who:?}: a command was typed into the terminal\n{screen}"
        );
        assert!(screen.contains("READ:[]"), "{who:?}: {screen}");
        let statuses: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with("STATUS:"))
            .map(str::trim)
            .collect();
        assert_eq!(
            statuses,
            ["STATUS:0", "STATUS:0", "STATUS:0"],
            "{who:?}: the program found a terminal to type into\n{screen}"
        );
        // the build's step and both runs: no terminal on any descriptor, none behind /dev/tty
        assert_eq!(
            screen.matches("devtty=ENXIO").count(),
            3,
            "{who:?}: {screen}"
        );
        for fd in ["fd0", "fd1", "fd2"] {
            assert_eq!(
                screen.matches(&format!("{fd}=ENOTTY")).count(),
                3,
                "{who:?}: {fd}\n{screen}"
            );
        }
    }
}

#[test]
fn tty_run_gets_a_pty_of_its_own_devpts() {
    let env = Who::Root.env();
    let screen = in_terminal(
        &env,
        &[shell_words(
            Who::Root,
            &[
                "run",
                "-t",
                "busybox",
                "sh",
                "-c",
                "tty; grep ' /dev/pts ' /proc/self/mounts; ls -1 /dev/pts",
            ],
        )],
    );
    assert!(screen.contains("/dev/pts/0"), "{screen}");
    // a devpts of its own: only the container's pty and ptmx are in it
    assert!(
        screen.contains("devpts /dev/pts devpts") && screen.contains("ptmxmode=666"),
        "{screen}"
    );
    let listed: Vec<&str> = screen
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
        .filter(|l| l.parse::<u32>().is_ok())
        .collect();
    assert_eq!(listed, ["0"], "{screen}");
}

/// `name=RESULT` lines of the syscalls program.
fn results(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn docker_seccomp_profile_applies_in_every_mode() {
    let prog = hostile("syscalls");
    for who in everyone() {
        let env = who.env();
        let ctx = context(
            &env,
            who,
            "FROM busybox\nCOPY syscalls /syscalls\nRUN grep Seccomp: /proc/self/status && /syscalls\n",
            &[&prog],
        );
        let built = who.ok(
            &env,
            &["build", "--progress", "plain", ctx.to_str().unwrap()],
        );
        assert!(built.contains("Seccomp:\t2"), "{who:?}: {built}");
        let r = results(&built);
        for denied in [
            "unshare_user",
            "unshare_mount",
            "unshare_net",
            "clone_newuser",
            "mount",
            "umount2",
            "setns",
            "pivot_root",
            "keyctl",
            "add_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "open_by_handle_at",
            "fsopen",
            "open_tree",
            "kexec_load",
            "init_module",
            "reboot",
            "settimeofday",
            "syslog",
            "iopl",
            "acct",
            "swapoff",
            "socket_vsock",
            "personality_exec",
        ] {
            assert_eq!(
                r.get(denied).map(String::as_str),
                Some("EPERM"),
                "{who:?}: {denied}\n{built}"
            );
        }
        assert_eq!(
            r.get("clone3").map(String::as_str),
            Some("ENOSYS"),
            "{built}"
        );
        for allowed in ["clone_plain", "personality_query", "socket_unix", "getpid"] {
            assert_eq!(
                r.get(allowed).map(String::as_str),
                Some("ok"),
                "{who:?}: {allowed}\n{built}"
            );
        }
        // `hoist run` too, with busybox's own unshare and mount
        let out = who.hoist(
            &env,
            &[
                "run",
                "busybox",
                "sh",
                "-c",
                "grep Seccomp: /proc/self/status; unshare -U true; echo U=$?; unshare -m true; \
                 echo M=$?; mount -t tmpfs none /mnt; echo mount=$?",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{who:?}: {}", show(&out));
        assert!(text.contains("Seccomp:\t2"), "{who:?}: {text}");
        for l in ["U=1", "M=1", "mount=1"] {
            assert!(text.lines().any(|t| t == l), "{who:?}: {l}\n{text}");
        }
    }
}

#[test]
fn device_nodes_made_in_a_step_cannot_be_opened() {
    for who in everyone() {
        let env = who.env();
        // as root the step keeps CAP_MKNOD (docker's default) and the node lands in the
        // layer; rootless the kernel refuses mknod in a user namespace. Either way no node
        // can be opened: the root, /dev and every mount are nodev
        let made = "for n in null:1:3 kvm:10:232 console:5:1; do \
             name=${n%%:*}; rest=${n#*:}; \
             mknod /tmp/$name c ${rest%:*} ${rest#*:} && echo made=$name; \
             mknod /dev/$name-dev c ${rest%:*} ${rest#*:} && echo made=$name-dev; \
             done; true";
        let opened = "for f in /tmp/null /tmp/kvm /tmp/console /dev/null-dev /dev/kvm-dev \
             /dev/console-dev; do \
             if [ -e $f ]; then if ( : <>$f ) 2>/dev/null; then echo opened=$f; \
             else echo refused=$f; fi; fi; done";
        let ctx = context(
            &env,
            who,
            &format!("FROM busybox\nRUN {made}; {opened}\nRUN {opened}\n"),
            &[],
        );
        let built = who.ok(
            &env,
            &[
                "build",
                "--progress",
                "plain",
                "-t",
                "nodes",
                ctx.to_str().unwrap(),
            ],
        );
        assert!(!built.contains("opened=/"), "{who:?}: {built}");
        let out = who.hoist(&env, &["run", "nodes", "sh", "-c", opened]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("opened=/"), "{who:?}: {text}");
        let run = who.hoist(
            &env,
            &["run", "busybox", "sh", "-c", &format!("{made}; {opened}")],
        );
        let run_text = String::from_utf8_lossy(&run.stdout);
        assert!(!run_text.contains("opened=/"), "{who:?}: {run_text}");
        if who == Who::Root {
            // docker's behaviour: mknod works, the node is in the image, opening fails
            for n in ["null", "kvm", "console"] {
                assert!(built.contains(&format!("made={n}\n")), "{built}");
                assert!(built.contains(&format!("refused=/tmp/{n}")), "{built}");
                assert!(text.contains(&format!("refused=/tmp/{n}")), "{text}");
            }
            assert!(built.contains("refused=/dev/kvm-dev"), "{built}");
        } else {
            assert!(
                !built.lines().any(|l| l.starts_with("made=")),
                "{who:?}: {built}"
            );
        }
        // the standard devices still work
        let std_devs = who.ok(
            &env,
            &[
                "run",
                "busybox",
                "sh",
                "-c",
                "echo x >/dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && ls /dev",
            ],
        );
        assert!(std_devs.contains("4\n4\n"), "{who:?}: {std_devs}");
        for d in [
            "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
            "urandom", "zero", "fd",
        ] {
            assert!(
                std_devs.lines().any(|l| l.trim() == d),
                "{who:?}: /dev/{d} missing\n{std_devs}"
            );
        }
    }
}

#[test]
fn ordinary_steps_still_work_under_the_profile() {
    for who in everyone() {
        let env = who.env();
        // an apt-like sequence: a user, files chowned to it, privileges dropped to it
        let ctx = context(
            &env,
            who,
            "FROM busybox\n\
             RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >>/etc/passwd && \
             echo 'app:x:1000:' >>/etc/group && mkdir -p /data /home/app && \
             chown -R app:app /data /home/app && su -s /bin/sh app -c 'echo dropped' && \
             chroot / true && echo steps-ok\n",
            &[],
        );
        let built = who.ok(
            &env,
            &["build", "--progress", "plain", ctx.to_str().unwrap()],
        );
        assert!(built.contains("dropped"), "{who:?}: {built}");
        assert!(built.contains("steps-ok"), "{who:?}: {built}");
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn killed_run_and_info_leave_nothing_in_the_temp_dir() {
    for who in [Who::Root, Who::Nobody] {
        let env = who.env();
        let tmp = env.path("tmpdir");
        std::fs::create_dir(&tmp).unwrap();
        if let Some(uid) = who.uid() {
            chown_tree(&tmp, uid);
        }
        // hoist info: the overlay probe's scratch dir (its `work/work` has mode 000)
        let mut info = who.command(&env, &["info"]);
        info.env("TMPDIR", &tmp);
        let out = run(&mut info);
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            entries(&tmp).is_empty(),
            "{who:?}: info left {:?}",
            entries(&tmp)
        );

        for (i, copy) in ["0", "1"].into_iter().enumerate() {
            // a sleep no other test runs, to find the container's process
            let marker = format!(
                "{}",
                900_000
                    + (std::process::id() % 20_000) * 4
                    + u32::from(who == Who::Root) * 2
                    + i as u32
            );
            let mut cmd = who.command(&env, &["run", "busybox", "sleep", &marker]);
            cmd.env("TMPDIR", &tmp)
                .env("HOIST_SANDBOX_COPY", copy)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = cmd.spawn().unwrap();
            let sleeping = || {
                std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
                    std::fs::read(p.path().join("cmdline"))
                        .map(|c| c == format!("sleep\0{marker}\0").as_bytes())
                        .unwrap_or(false)
                })
            };
            let until = Instant::now() + Duration::from_secs(60);
            while !sleeping() {
                assert!(
                    Instant::now() < until,
                    "the container's sleep never started"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // the setpriv wrapper execs hoist, so the child's pid is hoist's
            child.kill().unwrap();
            child.wait().unwrap();
            let until = Instant::now() + Duration::from_secs(30);
            while sleeping() {
                assert!(Instant::now() < until, "the container outlived hoist");
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut next = who.command(&env, &["images"]);
            next.env("TMPDIR", &tmp);
            let out = run(&mut next);
            assert!(out.status.success(), "{}", show(&out));
            assert!(
                entries(&tmp).is_empty(),
                "{who:?} (copy {copy}): left in TMPDIR: {:?}",
                entries(&tmp)
            );
            assert!(
                entries(&env.root.join("tmp")).is_empty(),
                "{who:?} (copy {copy}): left in the store's tmp: {:?}",
                entries(&env.root.join("tmp"))
            );
        }
    }
}

/// Runs `lines` (bash, as root) in a fresh network and mount namespace, with a `/dev/net/tun`
/// of mode `tun_mode` (Debian's default is 666; this machine's may be root's alone), whose only
/// "way out" is a veth
/// pair with both ends in that namespace (a default route through 10.99.0.1, which nobody
/// answers: nothing sent there leaves the namespace, let alone this machine), with a TCP server on the namespace's 127.0.0.1:4747 answering
/// `reached`. Returns the output.
fn in_test_netns(env: &TestEnv, tun_mode: &str, lines: &[String]) -> String {
    let script = env.path("netns.sh");
    let mut text = format!(
        "set -e\n\
         mount --make-rprivate /\n\
         mkdir -p {dir}\n\
         mount -t tmpfs none {dir}\n\
         mknod -m {tun_mode} {dir}/tun c 10 200\n\
         mount --bind {dir}/tun /dev/net/tun\n\
         ip link set lo up\n\
         ip link add hoistveth type veth peer name hoistpeer\n\
         ip addr add 10.99.0.2/24 dev hoistveth\n\
         ip link set hoistpeer up\n\
         ip link set hoistveth up\n\
         ip route add default via 10.99.0.1\n\
         python3 -c 'import socket\n\
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind((\"127.0.0.1\", 4747)); s.listen(16)\n\
while True:\n    c, _ = s.accept(); c.sendall(b\"reached\\n\"); c.close()' &\n\
         server=$!\n\
         for i in $(seq 200); do (echo >/dev/tcp/127.0.0.1/4747) 2>/dev/null && break; sleep 0.05; done\n\
         set +e\n",
        dir = env.path("tun").display()
    );
    for l in lines {
        text.push_str(l);
        text.push_str("\necho \"STATUS:$?\"\n");
    }
    text.push_str("kill $server\n");
    std::fs::write(&script, text).unwrap();
    let out = run(Command::new("unshare")
        .args(["--net", "--mount", "bash"])
        .arg(&script)
        .env("HOIST_ROOT", &env.root)
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path())
        .stdin(Stdio::null()));
    assert!(out.status.success(), "{}", show(&out));
    format!(
        "{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const PROBE: &str = "nc -w 3 127.0.0.1 4747 </dev/null; echo loopback=$?; \
     gw=$(ip route | awk '/^default/ {print $3}'); echo gateway=$gw; \
     nc -w 3 $gw 4747 </dev/null; echo via-gateway=$?; \
     ip -o link | awk -F': ' '{print \"link=\" $2}'; \
     grep -c '^nameserver' /etc/resolv.conf | sed 's/^/nameservers=/'";

#[test]
fn default_network_is_private_without_host_loopback() {
    for who in everyone() {
        let env = who.env();
        let ctx = context(&env, who, &format!("FROM busybox\nRUN {PROBE}\n"), &[]);
        let screen = in_test_netns(
            &env,
            "666",
            &[
                shell_words(who, &["info"]),
                shell_words(who, &["run", "busybox", "sh", "-c", PROBE]),
                shell_words(
                    who,
                    &["build", "--progress", "plain", ctx.to_str().unwrap()],
                ),
                shell_words(
                    who,
                    &["run", "--network", "host", "busybox", "sh", "-c", PROBE],
                ),
                shell_words(
                    who,
                    &[
                        "build",
                        "--network",
                        "host",
                        "--progress",
                        "plain",
                        ctx.to_str().unwrap(),
                    ],
                ),
                shell_words(
                    who,
                    &["run", "--network", "none", "busybox", "ip", "-o", "link"],
                ),
            ],
        );
        let reached =
            screen.matches("\nreached").count() + usize::from(screen.starts_with("reached"));
        // only the two `host` runs reach the server on the host's loopback
        assert_eq!(reached, 2, "{who:?}\n{screen}");
        let statuses: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with("STATUS:"))
            .collect();
        assert_eq!(statuses, ["STATUS:0"; 6], "{who:?}\n{screen}");
        assert!(
            screen.contains("network    private — `")
                && screen.contains("no access to the host's loopback"),
            "{who:?}\n{screen}"
        );
        // private (run and build step): refused on 127.0.0.1, nothing behind the gateway
        assert_eq!(
            screen.matches("gateway=10.99.0.1").count(),
            4,
            "{who:?}\n{screen}"
        );
        assert_eq!(screen.matches("loopback=1").count(), 2, "{who:?}\n{screen}");
        assert_eq!(
            screen.matches("via-gateway=1").count(),
            4,
            "{who:?}\n{screen}"
        );
        assert_eq!(screen.matches("loopback=0").count(), 2, "{who:?}\n{screen}");
        // the private namespace has an interface besides lo, a default route, a resolver
        assert_eq!(
            screen.matches("link=hoistveth").count(),
            4,
            "{who:?}\n{screen}"
        );
        assert_eq!(
            screen.matches("nameservers=0").count(),
            0,
            "{who:?}\n{screen}"
        );
        // none: only lo
        let none_out = screen.split("STATUS:0\n").nth(5).unwrap_or_default();
        assert!(none_out.contains(": lo:"), "{who:?}\n{none_out}");
        assert!(!none_out.contains("hoistveth"), "{who:?}\n{none_out}");
    }
}

#[test]
fn without_a_usable_tun_device_the_default_is_host_and_info_says_why() {
    for who in [Who::Nobody, Who::Ranged(hoisttest_uid())] {
        let env = who.env();
        let screen = in_test_netns(
            &env,
            "600",
            &[
                shell_words(who, &["info"]),
                shell_words(who, &["run", "busybox", "nc", "127.0.0.1", "4747"]),
                shell_words(who, &["run", "--network", "private", "busybox", "true"]),
            ],
        );
        assert!(
            screen.contains("network    host — `")
                && screen.contains("`/dev/net/tun` cannot be opened"),
            "{who:?}\n{screen}"
        );
        // the documented default: the host's network, its loopback included
        assert!(screen.contains("\nreached\n"), "{who:?}\n{screen}");
        // asked for explicitly, the private network fails with pasta's own reason
        assert!(screen.contains("STATUS:125"), "{who:?}\n{screen}");
        assert!(
            screen.contains("private network: `/usr/bin/pasta` failed:"),
            "{who:?}\n{screen}"
        );
    }
}

#[test]
fn pasta_ends_with_hoist_even_on_sigkill() {
    for who in [Who::Root, Who::Nobody] {
        let env = who.env();
        let root = env.root.display().to_string();
        // pasta's command line names its files under the store's tmp/
        let count = format!("pgrep -f -- '--log-file {root}/' | wc -l");
        let screen = in_test_netns(
            &env,
            "666",
            &[
                format!("{} >/dev/null 2>&1 &", shell_words(who, &["run", "busybox", "sleep", "600"])),
                format!(
                    "h=$!; for i in $(seq 400); do [ \"$({count})\" = 1 ] && break; sleep 0.05; done; \
                     echo \"pasta-before=$({count})\"; kill -9 $h; \
                     for i in $(seq 200); do [ \"$({count})\" = 0 ] && break; sleep 0.05; done; \
                     echo \"pasta-after=$({count})\""
                ),
            ],
        );
        assert!(screen.contains("pasta-before=1\n"), "{who:?}\n{screen}");
        assert!(screen.contains("pasta-after=0\n"), "{who:?}\n{screen}");
    }
}
