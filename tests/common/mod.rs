//! Shared harness for the integration tests: every test drives the real `hoist` binary against a
//! fresh store in its own temporary directory. A failing comparison prints expected and actual
//! between rulers.
#![allow(dead_code)]

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `hoist` binary cargo built for this test run.
pub fn hoist_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hoist"))
}

/// The repository's top directory.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory with a store at `root/`.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    /// When set, every command runs as this uid/gid with no capabilities (through setpriv).
    pub as_user: Option<u32>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("hoist-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("root");
        TestEnv {
            dir,
            root,
            as_user: None,
        }
    }

    /// An environment whose commands run as uid/gid 65534 (nobody) with no capabilities: the
    /// rootless case. The temp dir is handed to that user.
    pub fn rootless() -> TestEnv {
        let mut env = TestEnv::new();
        chown_tree(env.dir.path(), 65534);
        env.as_user = Some(65534);
        env
    }

    /// A path inside the test's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `hoist ARGS…` against this environment's store, not yet run.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = match self.as_user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".to_string(),
                    "--inh-caps=-all".to_string(),
                    "--bounding-set=-all".to_string(),
                    "--".to_string(),
                ]);
                c.arg(hoist_bin());
                c.env("HOME", self.dir.path());
                c
            }
            None => Command::new(hoist_bin()),
        };
        cmd.args(args)
            .env("HOIST_ROOT", &self.root)
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `hoist ARGS…`, asserts success, returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.cmd(args);
        let out = run(&mut cmd);
        assert_success(&cmd, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `hoist ARGS…`, asserts exit status `code`, returns stderr.
    pub fn fails<I, S>(&self, code: i32, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.cmd(args);
        let out = run(&mut cmd);
        if out.status.code() != Some(code) {
            panic!(
                "{cmd:?}: expected exit status {code}, got {:?}\n{}",
                out.status,
                show(&out)
            );
        }
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Imports the busybox fixture root file system as `name` and returns the image ID.
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = busybox_rootfs();
        self.ok(["import".as_ref(), tar.as_os_str(), name.as_ref()])
            .trim()
            .to_string()
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

/// How long one command of a test may take before it is killed: `HOIST_TEST_TIMEOUT` seconds,
/// else 15 minutes (the slowest, a Debian build that installs gcc, takes about 3 on an idle
/// machine). A command that hangs fails its test with what it printed, instead of holding the
/// whole run until CI's limit.
pub fn command_timeout() -> std::time::Duration {
    let secs = std::env::var("HOIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15 * 60);
    std::time::Duration::from_secs(secs)
}

/// Runs a command, capturing its output; past [`command_timeout`] its whole process group is
/// killed and the test panics with what the command had printed.
pub fn run(cmd: &mut Command) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // its own process group, so that a timeout kills what it started too
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // each stream is read on its own thread and handed over by a channel, so that a killed
    // command whose stray descendants still hold a pipe cannot block the test
    let drain = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let limit = command_timeout();
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => {
                let pid = child.id() as i32;
                // SAFETY: plain kill(2) calls on the group this command leads and on the child
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                let _ = child.wait();
                let grace = std::time::Duration::from_secs(10);
                let output = Output {
                    status: std::os::unix::process::ExitStatusExt::from_raw(9),
                    stdout: out.recv_timeout(grace).unwrap_or_default(),
                    stderr: err.recv_timeout(grace).unwrap_or_default(),
                };
                panic!(
                    "{cmd:?} did not finish within {} s and was killed\n{}",
                    limit.as_secs(),
                    show(&output)
                );
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: out.recv().unwrap_or_default(),
        stderr: err.recv().unwrap_or_default(),
    }
}

/// What a failed command printed when the fault was the network's or the package mirror's, not
/// the tool's: apt's messages for an unreachable host, a refused or dropped connection, and a
/// mirror caught in the middle of its sync. Also runc's own transient failure when buildah runs a
/// step: sealing the memfd copy of itself can meet EBUSY ("Close_Fd sealing memfd copy: Device or
/// resource busy", seen once in a CI dry run), which says nothing of the Dockerfile.
pub fn transient_fault(out: &Output) -> Option<String> {
    const SIGNS: &[&str] = &[
        "sealing memfd copy",
        "Failed to fetch",
        "Hash Sum mismatch",
        "File has unexpected size",
        "Mirror sync in progress",
        "Temporary failure resolving",
        "Could not resolve",
        "Could not connect",
        "Connection failed",
        "Connection timed out",
        "Unable to fetch some archives",
        "Some index files failed to download",
    ];
    if out.status.success() {
        return None;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(|l| l.trim().to_string())
}

/// Runs `attempt` (one try of the command `what`) and, when it failed for a reason
/// [`transient_fault`] recognises, tries again after a pause, at most three times in all; anything
/// else (success, or a failure of the tool's own) is returned at once. A build that needs the
/// Debian mirror tests hoist, not the mirror.
pub fn with_transient_retries(what: &str, mut attempt: impl FnMut() -> Output) -> Output {
    let mut n = 1;
    loop {
        let out = attempt();
        match transient_fault(&out) {
            Some(line) if n < 3 => {
                eprintln!("{what}: transient fault ({line}); trying again in 30 s");
                std::thread::sleep(std::time::Duration::from_secs(30));
                n += 1;
            }
            _ => return out,
        }
    }
}

/// Panics with both streams between rulers unless the command succeeded.
pub fn assert_success(cmd: &Command, out: &Output) {
    if !out.status.success() {
        panic!("{cmd:?} failed with {:?}\n{}", out.status, show(out));
    }
}

/// Both output streams between rulers.
pub fn show(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with expected and actual between rulers unless they are equal.
pub fn assert_same(what: &str, expected: &str, actual: &str) {
    if expected != actual {
        panic!(
            "{what} differs\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n----------------"
        );
    }
}

/// The busybox root file system tarball made by `fixtures/make-busybox-rootfs.sh`, made once per
/// test run (shared across test binaries through a lock file).
pub fn busybox_rootfs() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).expect("target tmp dir");
        let tar = dir.join("busybox-rootfs.tar");
        let lock = hoist::util::FileLock::exclusive(&dir.join("busybox-rootfs.lock"))
            .expect("fixture lock");
        if !tar.exists() {
            let out = run(Command::new(repo().join("fixtures/make-busybox-rootfs.sh")).arg(&tar));
            if !out.status.success() {
                panic!("fixtures/make-busybox-rootfs.sh failed\n{}", show(&out));
            }
        }
        drop(lock);
        // readable by the unprivileged test user too
        make_world_readable(&tar);
        tar
    })
    .clone()
}

fn make_world_readable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
}

/// Hands a directory tree to `uid` (gid the same).
pub fn chown_tree(p: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(p)
        .status()
        .expect("chown");
    assert!(status.success(), "chown -R {uid} {}", p.display());
}

/// Whether a program is on PATH (tests that need it install it through scripts/test.sh and fail
/// when it is missing: they never skip).
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{program}` is not installed: run scripts/test.sh, which installs it");
}
