//! A store survives everything: builds killed with SIGKILL at random moments leave a store that
//! `hoist check` passes (or `--repair` makes pass) and every image in it runs; builds, a
//! `prune -a` loop and readers side by side on one store fail only in the documented way.

mod common;
mod storecheck;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{busybox_rootfs, run, show, TestEnv};

/// A small reproducible random sequence (xorshift64*): the kill moments of a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const DOCKERFILE: &str = "FROM localhost/busybox
RUN echo one > /one && sleep 0.2
COPY f /f
RUN i=0; while [ $i -lt 300 ]; do echo $i > /n$i; i=$((i+1)); done
RUN cat /one /f > /both && sleep 0.3
ENV X=1
";

/// The context `ctx/` with the Dockerfile and its one source file (content varies per build, so
/// every build makes new layers and commits them).
fn context(env: &TestEnv, content: &str) -> PathBuf {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(ctx.join("f"), content).expect("f");
    ctx
}

/// `hoist ARGS…` with the system temp dir pointed at `tmp` (owned by the test).
fn cmd_in(env: &TestEnv, tmp: &Path, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("TMPDIR", tmp);
    c
}

fn ok_in(env: &TestEnv, tmp: &Path, args: &[&str]) -> String {
    let mut c = cmd_in(env, tmp, args);
    let out = run(&mut c);
    if !out.status.success() {
        panic!("{c:?} failed\n{}", show(&out));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills `child` with SIGKILL (if it has not finished) and reaps it.
fn kill(mut child: Child) -> bool {
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill();
    let _ = child.wait();
    !finished
}

/// `hoist check`, then `--repair` if it found something; the store must be clean afterwards.
fn check_or_repair(env: &TestEnv, tmp: &Path) -> String {
    let mut c = cmd_in(env, tmp, &["check"]);
    let first = run(&mut c);
    if first.status.success() {
        return String::from_utf8_lossy(&first.stdout).into_owned();
    }
    assert_eq!(first.status.code(), Some(1), "{}", show(&first));
    let repaired = ok_in(env, tmp, &["check", "--repair"]);
    assert!(repaired.contains("no problems"), "{repaired}");
    let again = ok_in(env, tmp, &["check"]);
    assert!(again.contains("no problems"), "{again}");
    format!(
        "{}{repaired}",
        String::from_utf8_lossy(&first.stdout).into_owned()
    )
}

#[test]
fn builds_killed_at_random_moments_leave_a_store_that_checks_and_runs() {
    let env = TestEnv::new();
    let tmp = env.path("systmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let tar = busybox_rootfs();
    ok_in(
        &env,
        &tmp,
        &["import", tar.to_str().expect("utf8"), "localhost/busybox"],
    );
    let mut rng = Rng(0x5eed_0000_0000_0042);
    let mut killed = 0;
    for i in 0..20 {
        context(&env, &format!("build {i}\n"));
        let name = format!("crash{i}");
        // the kill moment: a random time after a random step started (STEP 2 to 5: during a RUN
        // or a COPY; after STEP 6, the last: during the commit of layers, config, manifest and
        // the tag)
        let step = 2 + rng.below(5);
        // (the commit after STEP 6 takes a few ms: a kill there must come quickly)
        let delay = Duration::from_millis(rng.below(if step == 6 { 15 } else { 300 }));
        let mut child = cmd_in(
            &env,
            &tmp,
            // `--no-cache`: every step runs (and its cache entry is still written), so the kill
            // lands in RUN, COPY or commit work, not after a build of cache hits has finished
            &[
                "build",
                "--no-cache",
                "--progress",
                "plain",
                "-t",
                &name,
                "ctx",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn build");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let marker = format!("STEP {step}/6");
        while let Ok(line) = rx.recv() {
            if line.starts_with(&marker) {
                break;
            }
        }
        std::thread::sleep(delay);
        if kill(child) {
            killed += 1;
        }
    }
    eprintln!("killed {killed} of 20 builds");
    assert!(
        killed >= 10,
        "most builds must be killed, not finished: {killed}"
    );
    let report = check_or_repair(&env, &tmp);
    eprintln!("{report}");
    // every image hoist lists runs
    let ids = ok_in(&env, &tmp, &["images", "-a", "-q", "--no-trunc"]);
    assert!(!ids.trim().is_empty(), "no image survived");
    for id in ids.lines() {
        let out = ok_in(
            &env,
            &tmp,
            &["run", "--rm", id.trim(), "cat", "/etc/passwd"],
        );
        assert!(out.contains("root"), "{id}: {out}");
    }
    storecheck::verify(&env.root);
    // a rebuild succeeds and its result runs
    context(&env, "after the crashes\n");
    ok_in(&env, &tmp, &["build", "-q", "-t", "after", "ctx"]);
    let out = ok_in(&env, &tmp, &["run", "--rm", "after", "cat", "/both"]);
    assert_eq!(out, "one\nafter the crashes\n");
    let out = ok_in(&env, &tmp, &["check"]);
    assert!(out.contains("no problems"), "{out}");
    // nothing of hoist's is left in the system temp dir
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hoist-"))
        .collect();
    assert!(left.is_empty(), "left in the system temp dir: {left:?}");
}

/// The one error a build may give when `prune -a` removed its base before it started.
fn is_documented_base_gone(stderr: &str) -> bool {
    stderr.contains("is not in the local store") || stderr.contains("is not known")
}

#[test]
fn builds_prune_and_readers_side_by_side_fail_only_as_documented() {
    let env = Arc::new(TestEnv::new());
    let tar = busybox_rootfs();
    env.import_busybox("localhost/busybox");
    // four contexts that share the base and the first RUN layer
    for b in 0..4 {
        let ctx = env.path(&format!("ctx{b}"));
        std::fs::create_dir_all(&ctx).expect("ctx");
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM localhost/busybox\nRUN echo shared > /shared\nRUN echo {b} > /mine && sleep 0.1\nCOPY f /f\n"
            ),
        )
        .expect("Dockerfile");
        std::fs::write(ctx.join("f"), format!("{b}\n")).expect("f");
    }
    let done = Arc::new(AtomicBool::new(false));
    let builders: Vec<_> = (0..4)
        .map(|b| {
            let (env, tar) = (env.clone(), tar.clone());
            std::thread::spawn(move || {
                let mut built = 0;
                for k in 0..3 {
                    // the base comes back (prune -a takes it away again)
                    env.ok([
                        "import".as_ref(),
                        tar.as_os_str(),
                        "localhost/busybox".as_ref(),
                    ]);
                    let tag = format!("b{b}-{k}");
                    let ctx = format!("ctx{b}");
                    let mut c = env.cmd(["build", "-q", "-t", &tag, &ctx]);
                    let out = run(&mut c);
                    if out.status.success() {
                        built += 1;
                    } else {
                        let err = String::from_utf8_lossy(&out.stderr);
                        assert!(
                            out.status.code() == Some(1) && is_documented_base_gone(&err),
                            "build {tag} failed in an undocumented way\n{}",
                            show(&out)
                        );
                    }
                }
                built
            })
        })
        .collect();
    let pruner = {
        let (env, done) = (env.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                env.ok(["prune", "-a", "-f"]);
                n += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            n
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (env, done) = (env.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    env.ok(["images", "-a"]);
                    let mut c = env.cmd(["inspect", if r == 0 { "busybox" } else { "b0-0" }]);
                    let out = run(&mut c);
                    if !out.status.success() {
                        let err = String::from_utf8_lossy(&out.stderr);
                        assert!(is_documented_base_gone(&err), "{}", show(&out));
                    }
                }
            })
        })
        .collect();
    let built: usize = builders
        .into_iter()
        .map(|h| h.join().expect("builder"))
        .sum();
    done.store(true, Ordering::SeqCst);
    let prunes = pruner.join().expect("pruner");
    for r in readers {
        r.join().expect("reader");
    }
    eprintln!("{built} of 12 builds succeeded beside {prunes} prunes");
    // afterwards the store is clean, and a build on it works
    let out = env.ok(["check"]);
    assert!(out.contains("no problems"), "{out}");
    storecheck::verify(&env.root);
    env.import_busybox("localhost/busybox");
    env.ok(["build", "-q", "-t", "last", "ctx0"]);
    let out = env.ok(["run", "--rm", "last", "cat", "/shared", "/mine", "/f"]);
    assert_eq!(out, "shared\n0\n0\n");
    env.ok(["prune", "-a", "-f"]);
    let out = env.ok(["check"]);
    assert!(out.contains("0 images, 0 blobs"), "{out}");
}
