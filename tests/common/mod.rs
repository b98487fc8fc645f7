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

/// Runs a command, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
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
